"""Figures of the bulk four-terminal film: vacancy and temperature maps at chosen FFP events, R vs event.

Input is a dataset from ``simulate_scheme(..., "ffp", snapshot_events=...)`` (or read back from netCDF);
output PNGs are written atomically through matplotlib's Agg backend. ``plot_scheme`` is what
``memdrift pulse --plot`` draws: both panels in one file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from memdrift.data.io import atomic_path
from memdrift.errors import MemdriftError, field_error


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return Path(path)


def _draw_resistance(ax, ax2, ds: xr.Dataset, device: int) -> None:
    """R13 (and the write amplitude, when the dataset has one per event) against the event number."""
    if "time" in ds.resistance.dims:
        # retention: R against time at each bake temperature
        for k, temp in enumerate(ds.temperature.values):
            ax.semilogx(ds.time.values, ds.resistance.isel(device=device, temperature=k).values, "o-", ms=3,
                        label=f"{temp:.0f} K")
        ax.set_xlabel("time at zero bias (s)")
        ax.set_ylabel("R13 (ohm)")
        ax.legend()
        ax2.set_visible(False)
        return
    has_amplitude = "amplitude" in ds and ds.amplitude.ndim == 3
    for c in range(ds.sizes["cycle"]):
        r = ds.resistance.isel(device=device, cycle=c).values
        ok = np.isfinite(r)
        label = str(ds.branch.values[c]) if "branch" in ds.coords else f"cycle {c}"
        ax.plot(np.flatnonzero(ok) + 1, r[ok], ".", ms=2, label=label)
        if has_amplitude:
            a = ds.amplitude.isel(device=device, cycle=c).values
            ax2.plot(np.flatnonzero(ok) + 1, a[ok], ".", ms=2)
    if "snapshot" in ds.coords:
        last = int(np.max(np.sum(np.isfinite(ds.resistance.isel(device=device).values), axis=-1)))
        for ev in ds.snapshot.values:
            if ev <= last:
                ax.axvline(ev, color="0.6", lw=0.6, ls=":")
    ax.set_ylabel("R13 (ohm)")
    # identical-pulse runs have one curve per amplitude: a legend would bury the plot
    if ds.sizes["cycle"] <= 4:
        ax.legend(markerscale=4)
    ax2.set_ylabel("Vw (V)")
    ax2.set_xlabel("pulse event")
    if not has_amplitude:
        ax2.set_visible(False)
        ax.set_xlabel("pulse")


def plot_resistance(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0) -> Path:
    """R13 after each FFP event, both branches, with the amplitude used."""
    if "resistance" not in ds:
        raise MemdriftError("dataset has no 'resistance' variable; allowed: an ffp dataset")
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    _draw_resistance(ax, ax2, ds, device)
    fig.suptitle(f"{ds.attrs.get('preset', '')} {ds.attrs.get('scheme', '')}, device {device}")
    return _save(fig, path)


def _draw_maps(fig, ds: xr.Dataset, device: int, cycles: list[int]) -> None:
    """Rows of vacancy and temperature maps (one pair of rows per cycle), one column per snapshot event."""
    snaps = ds.snapshot.values
    axes = fig.subplots(2 * len(cycles), len(snaps), squeeze=False)
    vac_all = ds.vacancy_map.isel(device=device).values
    temp_all = ds.temperature_map.isel(device=device).values
    # one colour scale per quantity across the figure, so maps can be compared by eye; the vacancy scale
    # spans what the film holds (not from zero) because switching moves a few per cent of the content
    vmin, vmax = _finite_range(vac_all)
    tmin, tmax = _finite_range(temp_all)
    for row, cycle in enumerate(cycles):
        label = str(ds.branch.values[cycle]) if "branch" in ds.coords else f"cycle {cycle}"
        vac, temp = vac_all[cycle], temp_all[cycle]
        im = im2 = None
        for k, ev in enumerate(snaps):
            a_n, a_t = axes[2 * row, k], axes[2 * row + 1, k]
            for ax in (a_n, a_t):
                ax.set_xticks([])
                ax.set_yticks([])
            if not np.any(np.isfinite(vac[k])):
                # the branch ended before this event
                a_n.set_title(f"{label}, event {ev}:\nnot reached", fontsize=8)
                a_n.set_axis_off()
                a_t.set_axis_off()
                continue
            # x runs T1 -> T3 (left to right), y runs T4 -> T2 (bottom to top)
            im = a_n.imshow(vac[k].T, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax)
            a_n.set_title(f"{label}, event {ev}:\nvacancies", fontsize=8)
            im2 = a_t.imshow(temp[k].T, origin="lower", cmap="inferno", vmin=tmin, vmax=tmax)
            a_t.set_title(f"{label}, event {ev}:\nT during the write", fontsize=8)
        if im is not None:
            fig.colorbar(im, ax=axes[2 * row, :].tolist(), shrink=0.9, label="vacancies per cell")
            fig.colorbar(im2, ax=axes[2 * row + 1, :].tolist(), shrink=0.9, label="T (K)")


def _finite_range(x: np.ndarray) -> tuple[float, float]:
    if not np.any(np.isfinite(x)):
        return 0.0, 1.0
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    # a uniform map (heating off: T = T0 everywhere) still needs a non-empty colour range
    pad = max(abs(hi) * 1e-6, 1e-9)
    return lo, max(hi, lo + pad)


def plot_maps(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0, cycle: int = 0) -> Path:
    """Vacancy count and temperature maps at the dataset's snapshot events (top row: n, bottom row: T)."""
    if "vacancy_map" not in ds:
        raise MemdriftError("dataset has no 'vacancy_map'; allowed: an ffp dataset run with snapshot_events")
    plt = _pyplot()
    fig = plt.figure(figsize=(3.2 * ds.sizes["snapshot"], 6), layout="constrained")
    _draw_maps(fig, ds, device, [cycle])
    return _save(fig, path)


def plot_scheme(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0) -> Path:
    """One PNG summarising any bulk scheme dataset: R13 vs event number (and Vw), and, when the dataset
    holds snapshots, the vacancy and temperature maps at those events for every branch below it."""
    if "resistance" not in ds:
        raise MemdriftError("dataset has no 'resistance' variable; allowed: a bulk4t scheme dataset")
    if not 0 <= int(device) < ds.sizes["device"]:
        raise field_error("device", device, f"[0, {ds.sizes['device'] - 1}]")
    plt = _pyplot()
    maps = "vacancy_map" in ds and ds.sizes.get("snapshot", 0) > 0
    cycles = list(range(ds.sizes["cycle"])) if maps else []
    n_cols = ds.sizes["snapshot"] if maps else 0
    width = max(8.0, 2.3 * n_cols + 1.5)
    fig = plt.figure(figsize=(width, 5.0 + 4.4 * len(cycles)), layout="constrained")
    top, bottom = (fig.subfigures(2, 1, height_ratios=[5.0, 4.4 * len(cycles)]) if maps else (fig, None))
    ax, ax2 = top.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    _draw_resistance(ax, ax2, ds, device)
    title = f"{ds.attrs.get('preset', '')} {ds.attrs.get('scheme', '')}, device {device}"
    if "events" in ds:
        ev = ds.events.isel(device=device).values
        title += " (events: " + ", ".join(f"{b} {int(e)}" for b, e in zip(ds.branch.values, ev)) + ")"
    top.suptitle(title)
    if maps:
        _draw_maps(bottom, ds, device, cycles)
    return _save(fig, path)
